using System.Globalization;

namespace ZcProxy.Core.Transport;

/// <summary>
/// How big splice pipes are and how many may exist at once, sized against the kernel's pipe limits for the
/// process's user: fs.pipe-user-pages-soft (64 MiB by default; past it an unprivileged user's new pipes get 2 pages
/// and F_SETPIPE_SZ fails), fs.pipe-user-pages-hard (0: none), fs.pipe-max-size (the largest pipe an unprivileged
/// process may ask for). Three quarters of the quota are ours, in two pools of their own: half for HTTP bodies
/// (<see cref="BodyQuarters"/>, 1 MiB pipes), a quarter for relays (<see cref="RelayQuarters"/>: TCP streams and
/// upgraded connections, <see cref="DefaultRelayPipeSize"/>); the rest stays for the runtime's own pipes and other
/// processes of the same user. A small quota gets more, smaller pipes (never below the kernel's default of 64 KiB),
/// so that at least <see cref="MinPipes"/> transfers can be spliced at once. Root ignores the quota, but gets the same
/// budget: the numbers do not change with the user the proxy runs as.
/// </summary>
internal readonly record struct PipeBudget(int PipeSize, int MaxPipes, string Basis)
{
    public const int PreferredPipeSize = 1 << 20;
    /// <summary>
    /// Relays move both ways between two sockets that are often on one host: on loopback 256 KiB pipes gave the best
    /// throughput per CPU second of the proxy and its peers together (docs/transport.md, "Relay pipe size").
    /// </summary>
    public const int DefaultRelayPipeSize = 256 * 1024;
    /// <summary>The kernel's default pipe (16 pages): a pipe granted less is not worth splicing through.</summary>
    public const int KernelDefaultPipeSize = 64 * 1024;
    /// <summary>The largest pipe size the configuration accepts (the kernel caps unprivileged users at fs.pipe-max-size anyway).</summary>
    public const int MaxConfigurablePipeSize = 64 << 20;
    public const int MinPipes = 16;
    /// <summary>Without any quota: a bound all the same, as HAProxy's maxpipes.</summary>
    public const int MaxPipesWithoutQuota = 1024;
    public const int BodyQuarters = 2;
    public const int RelayQuarters = 1;

    /// <summary>The HTTP body pool's budget (response and request bodies).</summary>
    public static PipeBudget ForBodies() => FromKernel(PreferredPipeSize, BodyQuarters);

    /// <summary>The relay pool's budget: pipes of <paramref name="pipeSize"/> bytes (ZeroCopy.RelayPipeSize).</summary>
    public static PipeBudget ForRelays(long pipeSize) => FromKernel(pipeSize, RelayQuarters);

    private static PipeBudget FromKernel(long preferredSize, int quarters) => For(
        Read("/proc/sys/fs/pipe-max-size", PreferredPipeSize), Read("/proc/sys/fs/pipe-user-pages-soft", 16384),
        Read("/proc/sys/fs/pipe-user-pages-hard", 0), Environment.SystemPageSize, preferredSize, quarters);

    public static PipeBudget For(long pipeMaxSize, long softPages, long hardPages, int pageSize,
        long preferredSize = PreferredPipeSize, int quarters = BodyQuarters)
    {
        long quotaPages = softPages > 0 && hardPages > 0 ? Math.Min(softPages, hardPages) : Math.Max(softPages, hardPages);
        var basis = string.Create(CultureInfo.InvariantCulture,
            $"{quarters}/4 of the quota; fs.pipe-max-size {pipeMaxSize}, fs.pipe-user-pages-soft {softPages}, fs.pipe-user-pages-hard {hardPages}, page size {pageSize}");
        long size = Math.Max(KernelDefaultPipeSize, Math.Min(preferredSize, pipeMaxSize));
        if (quotaPages <= 0) return new PipeBudget((int)size, MaxPipesWithoutQuota, basis);
        long budget = quotaPages * pageSize / 4 * quarters;
        while (size > KernelDefaultPipeSize && budget / size < MinPipes) size /= 2;
        return new PipeBudget((int)size, (int)Math.Clamp(budget / size, 1, MaxPipesWithoutQuota), basis);
    }

    private static long Read(string path, long fallback)
    {
        try { return long.Parse(File.ReadAllText(path).Trim(), CultureInfo.InvariantCulture); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or OverflowException) { return fallback; }
    }
}
