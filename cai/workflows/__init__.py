"""Each job as stages: its stage descriptions, and the jobs made of several stages."""
