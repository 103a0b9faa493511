"""Typed models of the Loom APIs; the single source of truth for crds/*.yaml."""
