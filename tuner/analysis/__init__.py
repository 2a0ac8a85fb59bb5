"""Analysis of a finished (or partial) search: the boundary estimate (``boundary``, ``boundary_fit``) and the
report rendered from it (``report``, ``report_plots``)."""
