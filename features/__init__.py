"""Feature definitions: readable SQL, one file per feature family, plus pure helpers.

Nothing here reads files or opens connections; ``pipelines/`` runs the SQL.
"""
