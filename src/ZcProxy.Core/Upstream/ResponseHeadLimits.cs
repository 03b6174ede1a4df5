namespace ZcProxy.Core.Upstream;

/// <summary>Bounds on what an upstream may send as a response head (nginx: proxy_buffer_size).</summary>
internal sealed record ResponseHeadLimits
{
    public static readonly ResponseHeadLimits Default = new();

    /// <summary>Status line, header lines and the final empty line together.</summary>
    public int MaxHeadBytes { get; init; } = 64 * 1024;
    public int MaxHeaderCount { get; init; } = 128;
}
