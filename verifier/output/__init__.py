"""What people and CI read: text (text), report files (files), pictures (picture)."""
