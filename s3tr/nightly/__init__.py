"""The nightly batch: plan (``runs``), distributed extraction (``tasks``, ``cluster``), incremental
decisions (``state``), the pipeline itself (``pipeline``), its report (``report``) and fault
injection for crash tests (``faults``)."""
