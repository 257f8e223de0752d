"""The notifications app's Alembic history ("notify"), registered with `hub.add_migrations`."""

from pathlib import Path

LOCATION = Path(__file__).parent
