"""Quality of a generator measured against a real data build (issue 15 §2)."""
