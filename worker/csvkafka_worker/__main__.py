import sys

from csvkafka_worker.cli import main

sys.exit(main())
