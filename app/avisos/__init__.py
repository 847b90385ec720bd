"""Reading avisos: the policy of who may read what (`reading`), the SQL of a page (`sql`), and the
stream of blocks that serves it (`stream`). The routers translate HTTP to `reading` and back; nothing else."""
