"""What `openretina mei` writes around `openretina_models.insilico`: the typed request built from
its options, the targets it optimises, meis.json and meis.safetensors, and the figures and videos.
"""
