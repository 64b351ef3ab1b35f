/** "Did you mean": the near one among known names, for errors about a name that is not known. A leaf module, so every command can load it cheaply. */
import { distance } from 'fastest-levenshtein'

/** The closest of `candidates` to `word`, if it is close enough to be a likely typo. */
function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase())
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined
}

export function didYouMean(word: string, candidates: Iterable<string>): string {
  const s = suggest(word, candidates)
  return s ? ` (did you mean "${s}"?)` : ''
}
