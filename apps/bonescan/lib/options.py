"""The app's options (``monailabel start_server ... --conf NAME VALUE``), typed and checked once.

MONAI Label hands every ``--conf`` value over as a string. They are parsed here, once, when the
app starts (``BoneScanApp.__init__``, also in MONAI Label's job subprocesses, which get the same
conf); a bad value stops the start with a message naming the option, the value, what it means
and its default, instead of failing later inside a request or a background job.

Every option and environment variable the app reads is listed in ``AppOptions`` below, with its
meaning and default; nothing else in the app reads ``conf`` or these variables.
Environment: ``BONESCAN_OHIF_DIR`` (``ohif_dir`` when the option is not given) and
``BONESCAN_API_TOKEN`` (the API token; a secret, so read by ``lib.security`` and never kept here).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from monailabel.config import settings

logger = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parents[1]  # apps/bonescan
REPO = APP_DIR.parents[1]
OHIF_DIR_VARIABLE = "BONESCAN_OHIF_DIR"
# Options MONAI Label itself reads from the same conf: passed through, not warned about.
MONAI_LABEL_OPTIONS = {"server_mode", "auth_token", "preload"}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class OptionError(ValueError):
    """A ``--conf`` value the app cannot use; the message says which, why and what is expected."""


def _number(kind: type, minimum: float, strictly: bool = False) -> Callable[[str], Any]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError("not a whole number" if kind is int else "not a number") from None
        if value < minimum or (strictly and value == minimum) or value != value:
            raise ValueError(f"must be {'above' if strictly else 'at least'} {minimum:g}")
        return value

    return parse


def _flag(text: str) -> bool:
    if text.strip().lower() in _TRUE:
        return True
    if text.strip().lower() in _FALSE:
        return False
    raise ValueError("not true or false")


def _names(text: str) -> Tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _file(text: str) -> str:
    if not os.path.isfile(text):
        raise ValueError("no such file")
    return text


def _option(default: Any, meaning: str, parse: Callable[[str], Any] = str) -> Any:
    return field(default=default, metadata={"meaning": meaning, "parse": parse})


@dataclass(frozen=True)
class AppOptions:
    """The app's settings; ``None`` defaults are filled from the app folder or the environment."""

    model_dir: Optional[str] = _option(None, "where weights are read and published (default: apps/bonescan/model)")
    starter_minutes: float = _option(20.0, "CPU minutes for starter models when there are no weights (0: off)",
                                     _number(float, 0))
    starter_phantoms: int = _option(160, "phantom studies added to the datastore's labels for starter and "
                                         "retraining jobs", _number(int, 0))
    retrain_every: int = _option(5, "retrain both networks after this many saved final labels (0: never)",
                                 _number(int, 0))
    retrain_minutes: float = _option(10.0, "CPU minutes of each retraining job", _number(float, 0))
    dicomweb_cache: Optional[str] = _option(None, "cache folder of a DICOMweb study store (default: MONAI Label's "
                                                  "MONAI_LABEL_DICOMWEB_CACHE_PATH, else ~/.cache/bonescan/dicomweb)")
    dicomweb_list_seconds: float = _option(10.0, "how long the PACS study/label listing is reused", _number(float, 0))
    upload_retry_seconds: float = _option(30.0, "retry interval of labels the PACS did not take (0: retry only at "
                                                "the next save or start)", _number(float, 0))
    ohif_dir: Optional[str] = _option(None, f"the OHIF dist served at /viewer/ (default: ${OHIF_DIR_VARIABLE}, "
                                            "else var/ohif/dist)")
    allowed_origins: Tuple[str, ...] = _option((), "other web origins allowed to call the API, comma-separated "
                                                    "(https://host:port,...)", _names)
    allowed_hosts: Tuple[str, ...] = _option((), "Host header allow-list, comma-separated (default: loopback names "
                                                  "and the bind address)", _names)
    api_token_file: Optional[str] = _option(None, "file holding the API token (instead of $BONESCAN_API_TOKEN)", _file)
    max_upload_mb: float = _option(64.0, "largest request body in MB (413 beyond)", _number(float, 0, strictly=True))
    insecure_bind: bool = _option(False, "serve on a non-loopback address without authentication", _flag)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @classmethod
    def from_conf(cls, conf: Optional[Mapping[str, Any]], app_dir=APP_DIR) -> "AppOptions":
        """Parse MONAI Label's ``conf``; raises ``OptionError`` on the first value that cannot be used."""
        conf = dict(conf or {})
        values: Dict[str, Any] = {}
        for option in dataclasses.fields(cls):
            raw = conf.get(option.name)
            if raw is None or str(raw).strip() == "":
                continue
            try:
                values[option.name] = option.metadata["parse"](str(raw).strip())
            except ValueError as error:
                raise OptionError(f"--conf {option.name} {raw!r} refused: {error} [{option.name}: "
                                  f"{option.metadata['meaning']}; default {option.default!r}]") from None
        unknown = sorted(set(conf) - {f.name for f in dataclasses.fields(cls)} - MONAI_LABEL_OPTIONS)
        if unknown:
            logger.warning(f"Unknown --conf options ignored: {', '.join(unknown)} (see apps/bonescan/lib/options.py)")
        options = cls(**values)
        return dataclasses.replace(
            options,
            model_dir=os.path.abspath(options.model_dir or os.path.join(app_dir, "model")),
            dicomweb_cache=options.dicomweb_cache or settings.MONAI_LABEL_DICOMWEB_CACHE_PATH
            or os.path.join(os.path.expanduser("~"), ".cache", "bonescan", "dicomweb"),
            ohif_dir=options.ohif_dir or os.environ.get(OHIF_DIR_VARIABLE) or str(REPO / "var" / "ohif" / "dist"),
        )
