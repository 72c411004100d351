"""The paper's claims as data, the verdict model and its rendering (pandas only, no models)."""
