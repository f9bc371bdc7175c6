"""notify stage: tell farmers and instructors — outbox, messages, channels, delivery worker.

* ``outbox``: :func:`~s3tr.notify.outbox.enqueue`, called by the review functions inside the
  transaction of the change (a rolled-back change leaves no notification);
* ``templates`` (+ ``templates/*.j2``): French and English message texts;
* ``preferences``: per-user e-mail address, channels, language, opt-out;
* ``channels``: SMTP e-mail and the signed HTTP webhook of the push gateway;
* ``reminders`` and ``digest``: scheduled notifications (deadline reminders, instructors' digest);
* ``worker``: :func:`~s3tr.notify.worker.deliver_pending`, the delivery run (``s3tr notify run``).

Only ``outbox`` is imported eagerly: the review package imports it, and the rest imports the
review package.
"""

from __future__ import annotations

from s3tr.notify.outbox import Audience, Kind, enqueue

__all__ = ["Audience", "Kind", "enqueue"]
