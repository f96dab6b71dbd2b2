"""Human gold sets through Label Studio: a run's sample as tasks, people's answers as a gold set,
and the few REST calls between them (`cai review export|push|pull`)."""
