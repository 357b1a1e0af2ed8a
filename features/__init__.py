"""Feature definitions: readable SQL, one file per feature family, plus pure helpers.

Nothing here reads data or opens connections (the SQL templates are read as package resources);
``pipelines/`` runs the SQL.
"""
