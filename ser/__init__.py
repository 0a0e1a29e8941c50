"""Speech emotion recognition recipe after Xie et al. (IEEE/ACM TASLP 2019)."""

__version__ = "0.1.0"
