"""Comparing runs from their folders, without W&B or torch: runs read back (`runs`), tables
grouped by configuration (`tables`) and figures (`plots`)."""
