"""Doors that speak other SDKs' wire shapes (AI Spine, Neuron, Symbiont)."""
