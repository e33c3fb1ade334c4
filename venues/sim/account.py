"""Spot balances of the simulated account: free and locked per asset, exact e8 ints.

Why the flow counters: the venue's counterparty is "the rest of the market", so an
account's balances alone are not conserved (a BUY turns quote into base). What *is*
conserved, exactly, per asset, is::

    free + locked + fees_paid - received + given == initial + deposited

where ``received``/``given`` count what trades moved in from / out to the counterparty
and ``fees_paid`` every commission (negative for a maker rebate). The property tests
check this after every step; any rounding leak in the venue shows up as a mismatch of
at least one e8 unit.

Every mutation records the asset in ``changed`` so the venue can emit one
``BalanceUpdated`` (Binance's ``outboundAccountPosition``) per handled input.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.errors import VenueMisbehaved


class InsufficientBalance(VenueMisbehaved):
    """An internal debit exceeded the balance it was drawn from: a venue bug, never a user error.

    (A user asking for more than they have gets ``-2010 Account has insufficient balance``
    from the venue's checks before anything is debited.)
    """


class Account:
    """Free/locked balances plus the flow counters of the conservation invariant."""

    __slots__ = ("changed", "deposited", "fees_paid", "free", "given", "initial", "locked", "received", "reported")

    def __init__(self, balances: Mapping[str, int] | None = None) -> None:
        self.free: dict[str, int] = {}
        self.locked: dict[str, int] = {}
        self.initial: dict[str, int] = {}
        self.deposited: dict[str, int] = {}
        self.fees_paid: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.given: dict[str, int] = {}
        self.changed: set[str] = set()
        self.reported: dict[str, tuple[int, int]] = {}
        for asset, amount in (balances or {}).items():
            if amount < 0:
                raise ValueError(f"initial balance of {asset} is negative: {amount}")
            self.free[asset] = amount
            self.locked[asset] = 0
            self.initial[asset] = amount
            self.reported[asset] = (amount, 0)

    # ----------------------------------------------------------------- reads

    def free_of(self, asset: str) -> int:
        return self.free.get(asset, 0)

    def locked_of(self, asset: str) -> int:
        return self.locked.get(asset, 0)

    def assets(self) -> list[str]:
        """Every asset the account has ever touched, sorted."""
        return sorted(set(self.free) | set(self.locked) | set(self.fees_paid))

    def take_changes(self) -> tuple[tuple[str, int, int], ...]:
        """Assets whose (free, locked) differ from the last report, as ``(asset, free, locked)`` sorted by asset.

        An asset locked and released within one input (an order that expired at once) is not reported.
        """
        changed = self.changed
        if not changed:
            return ()
        reported = self.reported
        if len(changed) == 1:  # the common case (an order locked or released one asset), without the loop
            a = changed.pop()
            cur = (self.free.get(a, 0), self.locked.get(a, 0))
            if reported.get(a) == cur:
                return ()
            reported[a] = cur
            return ((a, cur[0], cur[1]),)
        free, locked = self.free, self.locked
        if len(changed) == 2:  # a trade (base and quote): both written out, without sorted() and a loop
            a, b = changed
            changed.clear()
            if b < a:
                a, b = b, a
            ca = (free.get(a, 0), locked.get(a, 0))
            cb = (free.get(b, 0), locked.get(b, 0))
            if reported.get(a) != ca:
                reported[a] = ca
                if reported.get(b) != cb:
                    reported[b] = cb
                    return ((a, ca[0], ca[1]), (b, cb[0], cb[1]))
                return ((a, ca[0], ca[1]),)
            if reported.get(b) != cb:
                reported[b] = cb
                return ((b, cb[0], cb[1]),)
            return ()
        out = []
        for a in sorted(changed):
            f, lk = free.get(a, 0), locked.get(a, 0)
            prev = reported.get(a)
            if prev is None or prev[0] != f or prev[1] != lk:
                reported[a] = (f, lk)
                out.append((a, f, lk))
        changed.clear()
        return tuple(out)

    def conservation_gap(self, asset: str) -> int:
        """``free + locked + fees - received + given - initial - deposited``: 0 when nothing leaked."""
        return (
            self.free.get(asset, 0)
            + self.locked.get(asset, 0)
            + self.fees_paid.get(asset, 0)
            - self.received.get(asset, 0)
            + self.given.get(asset, 0)
            - self.initial.get(asset, 0)
            - self.deposited.get(asset, 0)
        )

    # ----------------------------------------------------------------- mutations

    def deposit(self, asset: str, amount: int) -> None:
        """Add funds from outside (a test, a transfer); counted in ``deposited``."""
        if amount < 0:
            raise ValueError(f"deposit of {asset} is negative: {amount}")
        self.free[asset] = self.free.get(asset, 0) + amount
        self.locked.setdefault(asset, 0)
        self.deposited[asset] = self.deposited.get(asset, 0) + amount
        self.changed.add(asset)

    def try_lock(self, asset: str, amount: int) -> bool:
        """Move ``amount`` from free to locked; False (and no change) if free is short."""
        free = self.free.get(asset, 0)
        if amount > free:
            return False
        if amount:
            self.free[asset] = free - amount
            self.locked[asset] = self.locked.get(asset, 0) + amount
            self.changed.add(asset)
        return True

    def unlock(self, asset: str, amount: int) -> None:
        """Move ``amount`` back from locked to free (cancel, expiry, price improvement)."""
        if not amount:
            return
        locked = self.locked.get(asset, 0)
        if amount > locked:
            raise InsufficientBalance(f"unlock {amount} {asset} but only {locked} locked")
        self.locked[asset] = locked - amount
        self.free[asset] = self.free.get(asset, 0) + amount
        self.changed.add(asset)

    def pay_locked(self, asset: str, amount: int) -> None:
        """Give ``amount`` of locked funds to the counterparty (our side of a trade)."""
        if not amount:
            return
        locked = self.locked.get(asset, 0)
        if amount > locked:
            raise InsufficientBalance(f"pay {amount} {asset} from locked but only {locked} locked")
        self.locked[asset] = locked - amount
        self.given[asset] = self.given.get(asset, 0) + amount
        self.changed.add(asset)

    def trade(self, give_asset: str, give: int, get_asset: str, get: int) -> None:
        """Our side of one trade: ``give`` of locked ``give_asset`` to the counterparty, ``get`` of
        ``get_asset`` from it into free (``pay_locked`` then ``receive``, in one call)."""
        if give:
            locked = self.locked.get(give_asset, 0)
            if give > locked:
                raise InsufficientBalance(f"pay {give} {give_asset} from locked but only {locked} locked")
            self.locked[give_asset] = locked - give
            self.given[give_asset] = self.given.get(give_asset, 0) + give
            self.changed.add(give_asset)
        if get:
            self.free[get_asset] = self.free.get(get_asset, 0) + get
            self.locked.setdefault(get_asset, 0)
            self.received[get_asset] = self.received.get(get_asset, 0) + get
            self.changed.add(get_asset)

    def settle(self, give_asset: str, give: int, get_asset: str, get: int, fee: int) -> None:
        """One trade whose commission is taken from what it received: ``trade(give_asset, give, get_asset,
        get)`` then ``charge_fee(get_asset, fee)`` in one call (the venue's hot path), same checks, same order."""
        changed = self.changed
        if give:
            locked = self.locked.get(give_asset, 0)
            if give > locked:
                raise InsufficientBalance(f"pay {give} {give_asset} from locked but only {locked} locked")
            self.locked[give_asset] = locked - give
            given = self.given
            given[give_asset] = given.get(give_asset, 0) + give
            changed.add(give_asset)
        if get or fee:
            free = self.free
            have = free.get(get_asset, 0) + get
            if fee > have:
                if get:  # the received part stays, as trade() then charge_fee() would leave it
                    free[get_asset] = have
                    self.received[get_asset] = self.received.get(get_asset, 0) + get
                    self.locked.setdefault(get_asset, 0)
                    changed.add(get_asset)
                raise InsufficientBalance(f"fee {fee} {get_asset} but only {have} free")
            free[get_asset] = have - fee
            self.locked.setdefault(get_asset, 0)
            if get:
                received = self.received
                received[get_asset] = received.get(get_asset, 0) + get
            if fee:
                fees = self.fees_paid
                fees[get_asset] = fees.get(get_asset, 0) + fee
            changed.add(get_asset)

    def receive(self, asset: str, amount: int) -> None:
        """Receive ``amount`` from the counterparty into free."""
        if not amount:
            return
        self.free[asset] = self.free.get(asset, 0) + amount
        self.locked.setdefault(asset, 0)
        self.received[asset] = self.received.get(asset, 0) + amount
        self.changed.add(asset)

    def charge_fee(self, asset: str, amount: int) -> None:
        """Debit a commission from free (negative ``amount`` = rebate, credited)."""
        if not amount:
            return
        free = self.free.get(asset, 0)
        if amount > free:
            raise InsufficientBalance(f"fee {amount} {asset} but only {free} free")
        self.free[asset] = free - amount
        self.locked.setdefault(asset, 0)
        self.fees_paid[asset] = self.fees_paid.get(asset, 0) + amount
        self.changed.add(asset)
