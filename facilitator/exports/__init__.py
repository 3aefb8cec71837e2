"""Exports of attendance for coordinators (CSV, XLSX, JSON): issue 5, under way."""
