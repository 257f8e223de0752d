"""Alembic revisions of the collab app's tables (history "collab")."""
