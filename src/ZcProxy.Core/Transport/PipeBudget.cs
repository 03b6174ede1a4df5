using System.Globalization;

namespace ZcProxy.Core.Transport;

/// <summary>
/// How big splice pipes are and how many may exist at once, sized against the kernel's pipe limits for the
/// process's user: fs.pipe-user-pages-soft (64 MiB by default; past it an unprivileged user's new pipes get 2 pages
/// and F_SETPIPE_SZ fails), fs.pipe-user-pages-hard (0: none), fs.pipe-max-size (the largest pipe an unprivileged
/// process may ask for). Three quarters of the quota is ours; the rest stays for the runtime's own pipes and other
/// processes of the same user. A small quota gets more, smaller pipes (never below the kernel's default of 64 KiB),
/// so that at least <see cref="MinPipes"/> bodies can be spliced at once. Root ignores the quota, but gets the same
/// budget: the numbers do not change with the user the proxy runs as.
/// </summary>
internal readonly record struct PipeBudget(int PipeSize, int MaxPipes, string Basis)
{
    public const int PreferredPipeSize = 1 << 20;
    /// <summary>The kernel's default pipe (16 pages): a pipe granted less is not worth splicing through.</summary>
    public const int KernelDefaultPipeSize = 64 * 1024;
    public const int MinPipes = 16;
    /// <summary>Without any quota: a bound all the same, as HAProxy's maxpipes.</summary>
    public const int MaxPipesWithoutQuota = 1024;

    public static PipeBudget FromKernel() => For(
        Read("/proc/sys/fs/pipe-max-size", PreferredPipeSize), Read("/proc/sys/fs/pipe-user-pages-soft", 16384),
        Read("/proc/sys/fs/pipe-user-pages-hard", 0), Environment.SystemPageSize);

    public static PipeBudget For(long pipeMaxSize, long softPages, long hardPages, int pageSize)
    {
        long quotaPages = softPages > 0 && hardPages > 0 ? Math.Min(softPages, hardPages) : Math.Max(softPages, hardPages);
        var basis = string.Create(CultureInfo.InvariantCulture,
            $"fs.pipe-max-size {pipeMaxSize}, fs.pipe-user-pages-soft {softPages}, fs.pipe-user-pages-hard {hardPages}, page size {pageSize}");
        long size = Math.Max(KernelDefaultPipeSize, Math.Min(PreferredPipeSize, pipeMaxSize));
        if (quotaPages <= 0) return new PipeBudget((int)size, MaxPipesWithoutQuota, basis);
        long budget = quotaPages * pageSize / 4 * 3;
        while (size > KernelDefaultPipeSize && budget / size < MinPipes) size /= 2;
        return new PipeBudget((int)size, (int)Math.Clamp(budget / size, 1, MaxPipesWithoutQuota), basis);
    }

    private static long Read(string path, long fallback)
    {
        try { return long.Parse(File.ReadAllText(path).Trim(), CultureInfo.InvariantCulture); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or OverflowException) { return fallback; }
    }
}
