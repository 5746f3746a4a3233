"""EO image mining: active learning of a user's category over the mined patches (issue 19).

* :mod:`candela.mining.learner`: classifier, uncertainty + diversity batch selection, estimates
  (numpy only);
* :mod:`candela.mining.sessions`: the loop over the database (a session per user and category,
  labels, iterations, retrieved patches), on :mod:`candela.db.mining_labels` and the patch
  table of :mod:`candela.db.mining`;
* :mod:`candela.mining.annotate`: the learned category as a class and its member patches in the
  knowledge base (one named graph per session).
"""
