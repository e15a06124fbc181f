"""Per-address budgets for logins and registrations, whichever way they come in.

A budget is ``limit`` events per ``window`` seconds, counted in Django's default cache in
windows aligned on the clock (``add`` then the atomic ``incr``), so every process shares the
count when the cache is Redis. Unlike the lockout, which counts failures, a budget counts
every attempt: right passwords cost the server a hash too.
"""

import math
import time

from mqant import conf, counters, metrics
from mqant.accounts.errors import Refused

KEY_PREFIX = "account-budget"


class Throttled(Refused):
    """The address spent its budget; ``retry_after`` seconds until the next window."""

    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(f"Too many {what} from this address; try again in {retry_after} s")
        self.retry_after = retry_after


# Budget name -> (the setting that holds [limit, window seconds], what the error calls it).
BUDGETS = {
    "login": ("LOGIN_RATE_PER_ADDRESS", "logins"),
    "register": ("REGISTER_RATE_PER_ADDRESS", "new accounts"),
}


def take(budget: str, ip: str) -> None:
    """Spend one event of ``budget`` for address ``ip``; raises Throttled when it is spent."""
    setting, what = BUDGETS[budget]
    limit, window = (int(n) for n in conf.get(setting))
    if limit <= 0 or not ip:
        return
    now = time.time()
    start = int(now // window) * window
    if counters.add(counters.key(KEY_PREFIX, budget, str(start), ip), window + 1) > limit:
        metrics.RATE_LIMITS.child(f"{budget}_budget").add()  # a name of BUDGETS
        raise Throttled(what, max(1, math.ceil(start + window - now)))
