"""What each network IS, one folder per family (`siren/`, `poly/`, `latent/`): the torch module
(`model.py`) and the numpy evaluator (`numpy.py`); `registry.py` maps the format's architecture ids
to them and to their encoders. Nothing here fits a network (that is `codec.encoding`)."""
