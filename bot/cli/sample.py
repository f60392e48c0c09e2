"""A small sample pull request, for ``docgen demo`` and the tests.

The base branch ``main`` holds a Google-style module; the branch ``feature`` adds and
changes functions the way a real PR does: new undocumented functions and methods, a
generator, a function that raises, a stale docstring (a renamed parameter), a private
helper, and a change deep inside a long function whose header is outside the diff.

Both versions are built from the parts they share, so that what the PR changes is
what differs below: the imports, ``restock``, one branch of ``report``, the new code.
"""

from __future__ import annotations

from pathlib import Path

import git

_MODULE_DOC = '''\
"""Inventory helpers for the sample shop."""

from __future__ import annotations

'''

_ITEM_AND_TOTAL = '''\


@dataclass
class Item:
    """A product on the shelf.

    Args:
        sku: Stock keeping unit.
        price: Unit price in cents.
    """

    sku: str
    price: int


def total(items: list[Item], discount: float = 0.0) -> int:
    """Add up the price of items.

    Args:
        items: The items to add up.
        discount: Fraction taken off the total.

    Returns:
        The total in cents.
    """
    gross = sum(item.price for item in items)
    return round(gross * (1 - discount))
'''

_RESTOCK_DOC = '''\
    """Put items back on the shelf.

    Args:
        shelf: Stock per SKU.
        sku: The product.
    """
'''


def _report(overstock: str) -> str:
    """``report``: a long function; the PR adds the ``overstock`` branch deep inside."""
    return f'''

def report(shelf: dict[str, int]) -> list[str]:
    """List the stock, one line per product.

    Args:
        shelf: Stock per SKU.

    Returns:
        One line per product.
    """
    lines = []
    for sku in sorted(shelf):
        count = shelf[sku]
        if count == 0:
            lines.append(f"{{sku}}: sold out")
        elif count < 5:
            lines.append(f"{{sku}}: {{count}} (low)")
{overstock}        else:
            lines.append(f"{{sku}}: {{count}}")
    return lines
'''


BASE = (
    _MODULE_DOC
    + "from dataclasses import dataclass\n"
    + _ITEM_AND_TOTAL
    + "\n\ndef restock(shelf: dict[str, int], sku: str, count: int) -> None:\n"
    + _RESTOCK_DOC
    + "    shelf[sku] = shelf.get(sku, 0) + count\n"
    + _report("")
)

# The PR: a renamed parameter (stale docstring), a new check, a new branch, new code.
HEAD = (
    _MODULE_DOC
    + "from collections.abc import Iterator\nfrom dataclasses import dataclass\n"
    + _ITEM_AND_TOTAL
    + "\n\ndef restock(stock: dict[str, int], sku: str, count: int) -> None:\n"
    + _RESTOCK_DOC
    + """\
    if count < 0:
        raise ValueError("count must not be negative")
    stock[sku] = stock.get(sku, 0) + count
"""
    + _report(
        '        elif count > 1000:\n            lines.append(f"{sku}: {count} (overstocked)")\n'
    )
    + """

def cheapest(items: list[Item], limit: int = 3) -> list[Item]:
    ranked = sorted(items, key=lambda item: item.price)
    return ranked[:limit]


def low_stock(shelf: dict[str, int], *, threshold: int = 5) -> Iterator[str]:
    for sku, count in shelf.items():
        if count < threshold:
            yield sku


class Basket:
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.items: list[Item] = []

    def add(self, item: Item, quantity: int = 1) -> None:
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self.items.extend([item] * quantity)

    def checkout(self, shelf: dict[str, int]) -> int:
        for item in self.items:
            if shelf.get(item.sku, 0) <= 0:
                raise LookupError(item.sku)
            shelf[item.sku] -= 1
        return total(self.items)


def _cents(value: float) -> int:
    return round(value * 100)
"""
)


def make_sample_repo(root: Path) -> Path:
    """Create the sample repository under ``root`` and return its path."""
    path = root / "sample-shop"
    path.mkdir(parents=True)
    repo = git.Repo.init(path, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "docgen demo")
        cw.set_value("user", "email", "demo@example.invalid")
        cw.set_value("commit", "gpgsign", "false")
    pkg = path / "shop"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "inventory.py").write_text(BASE)
    repo.index.add(["shop/__init__.py", "shop/inventory.py"])
    repo.index.commit("Inventory helpers")
    repo.git.checkout("-b", "feature")
    (pkg / "inventory.py").write_text(HEAD)
    repo.index.add(["shop/inventory.py"])
    repo.index.commit("Baskets, cheapest items and low-stock alerts")
    return path
