"""``python -m biotech_ma_db.cli``: the same as the ``biotech-ma-db`` script."""

from biotech_ma_db.cli import main

if __name__ == "__main__":
    main()
