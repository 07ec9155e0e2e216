from training_jobs.serve.main import main

raise SystemExit(main())
