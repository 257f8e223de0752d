"""The core's revisions, oldest first: `0001_core_tables` creates `hubbub_kv`."""
