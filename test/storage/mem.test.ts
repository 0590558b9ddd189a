import { MemoryStorage } from '../../src/storage/mem.js';
import { openStorage } from '../../src/storage/registry.js';
import { storageConformance } from './conformance.js';

// Objects live in memory here: a smaller round trip, and no RSS bound (it would measure the store itself).
storageConformance('mem', () => openStorage('mem://conformance/prefix', '/'), {
  bigBytes: 24 * 1024 * 1024,
  maxRssGrowth: null,
  denied: async () => MemoryStorage.named('conformance', 'prefix/', { readOnly: true }),
  teardown: async () => MemoryStorage.reset('conformance'),
});
