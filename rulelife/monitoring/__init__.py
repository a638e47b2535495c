"""Is a live rule still good? The monitor contract, daily metrics, tickets, the lexicon review and the nightly job."""
