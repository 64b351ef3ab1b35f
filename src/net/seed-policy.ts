/** How the coordinator first places ready actions (after that, workers steal). A leaf module: the CLI reads it without loading libp2p. */
export const SEED_POLICIES = ['round-robin', 'least-loaded', 'single'] as const
export type SeedPolicy = (typeof SEED_POLICIES)[number]
