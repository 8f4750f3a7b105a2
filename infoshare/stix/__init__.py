"""STIX 2.1: markings, ids, validation, and (later) Notice conversion. Pure: no Flask, no DB."""
