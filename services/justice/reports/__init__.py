"""Official reports: drafting, XAdES signing, amendment, submission."""
