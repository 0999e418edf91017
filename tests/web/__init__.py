"""Tests of the web workspace (ioplan serve): API, pages, the viewer in Chromium."""
