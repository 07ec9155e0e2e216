from training_jobs.local.demo import main

raise SystemExit(main())
