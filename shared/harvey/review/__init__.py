"""The review page: a signed link to one run, and the page on which a lawyer reads and corrects it.

`links` mints and checks the link's token (HMAC, scoped to tenant and run, expiring); `page` turns a
run's response into the page (draft, sources, unsupported sentences, feedback controls) and its
Content-Security-Policy; `static/` holds the page's script and style, inlined under a per-response
nonce. What the page posts is ordinary feedback (`harvey.store.feedback`).
"""
