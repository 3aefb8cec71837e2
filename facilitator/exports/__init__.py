"""What coordinators and auditors take away: attendance exports (CSV, XLSX, JSON), reports
(charts and tables), and the consent ledger, each filtered to what the asker may see.

- filters.py: which circles (group, region, sector, platform, script, local dates).
- levels.py: the attendance, circle and person tables, streamed from the database.
- writers.py and cells.py: the files, spreadsheet-safe.
- access.py: coordinators per group or region.
- run.py: an export from start to finish, with a progress bar on a terminal.
- report.py: attendance per month as a chart and a table.
- audit.py: the consent ledger for an audit.
"""
