from lmserver.cli import main

raise SystemExit(main())
