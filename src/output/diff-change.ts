import { createTwoFilesPatch } from 'diff';
import { changeTexts, type FileChange } from './write-rendered.js';

/** A short unified diff of one change, at most `maxLines` lines. */
export function diffChange(c: FileChange, outDir: string, maxLines = 40): string {
  const { before, after } = changeTexts(c, outDir);
  const patch = createTwoFilesPatch(`a/${c.path}`, `b/${c.path}`, before, after, '', '', { context: 1 });
  const lines = patch
    .split('\n')
    .slice(2)
    .filter((l) => l !== '');
  if (lines.length <= maxLines) return lines.join('\n');
  return [...lines.slice(0, maxLines), `... (${lines.length - maxLines} more diff lines)`].join('\n');
}
