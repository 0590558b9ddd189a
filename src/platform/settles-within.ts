/**
 * True when `work` settles (either way) within `ms`, false when the time runs out first; it
 * never rejects and keeps no timer alive after it answers. For clean-up that must not wait
 * on something that may never answer (a frozen server): the caller decides what to drop.
 */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
