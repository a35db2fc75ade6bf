"""The power-cut explorer (ALICE, OSDI 2014; CrashMonkey, OSDI 2018): record the file-system
operations of an engine action under strace, build every state a power cut could leave,
and check that recovery always ends with every file complete and the ledger true."""
