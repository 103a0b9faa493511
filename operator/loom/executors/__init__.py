"""Where workloads run: `kubernetes` (Jobs/CronJobs) or `local` (supervised processes); services never know which."""
