"""Program identity, shared by the collector (root) and the policy daemon
(unprivileged); no bcc, no D-Bus, no database here.

* ``files``: who a file is (inode, sha256, ELF traits), cached by stat;
* ``elf``: what an ELF file is made of (build-id, code segments, TLSH of
  the code, interpreter, loader or library);
* ``match``: whether a file is one of a rule's programs (exact, same code,
  or similar code within a documented TLSH distance).
"""
