"""Tests of what rtbridge ships: the built JS files, the npm package, the wheel, the Makefile."""
