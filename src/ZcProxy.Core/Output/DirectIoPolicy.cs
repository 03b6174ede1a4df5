namespace ZcProxy.Core.Output;

/// <summary>When a file range is read with O_DIRECT instead of being sent from the page cache with sendfile.</summary>
internal enum DirectIoMode
{
    /// <summary>
    /// A range of at least the threshold is read with O_DIRECT only when its pages are not in the page cache; a resident
    /// one goes out with sendfile whatever its size. Below the threshold: sendfile.
    /// </summary>
    Residency,
    /// <summary>A file of at least the threshold is always read with O_DIRECT (nginx's <c>directio</c>): ZcProxy's rule before residency.</summary>
    Threshold,
    /// <summary>Never O_DIRECT: everything goes out with sendfile (nginx's <c>directio off</c>).</summary>
    Off,
}

/// <summary>A sender's direct-I/O rule: the mode and DirectIoThreshold (bytes).</summary>
internal readonly record struct DirectIoPolicy(DirectIoMode Mode, long Threshold);
