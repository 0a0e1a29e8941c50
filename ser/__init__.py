"""Speech emotion recognition recipe after Xie et al. (IEEE/ACM TASLP 2019)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that `import ser` stays light: the classifier pulls in torch and lhotse.
    if name == "EmotionClassifier":
        from ser.inference import EmotionClassifier
        return EmotionClassifier
    raise AttributeError(f"module 'ser' has no attribute {name!r}")
