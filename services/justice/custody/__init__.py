"""Seized goods: chain of custody from seizure to final disposition."""
