"""Kept for test files that still ``import _ds_oracle``: the oracle is tests/helpers/ds_oracle.py."""

from helpers.ds_oracle import *  # noqa: F403
