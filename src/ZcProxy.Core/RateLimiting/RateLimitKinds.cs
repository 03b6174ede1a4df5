namespace ZcProxy.Core.RateLimiting;

/// <summary>The "Kind" names of a rate-limit policy (compared without case).</summary>
internal static class RateLimitKinds
{
    public const string TokenBucket = "TokenBucket";
    public const string FixedWindow = "FixedWindow";
    public const string SlidingWindow = "SlidingWindow";
    public const string Concurrency = "Concurrency";

    public static bool IsKnown(string? kind) => IsTokenBucket(kind) || IsFixedWindow(kind) || IsSlidingWindow(kind) || IsConcurrency(kind);
    public static bool IsTokenBucket(string? kind) => string.Equals(kind, TokenBucket, StringComparison.OrdinalIgnoreCase);
    public static bool IsFixedWindow(string? kind) => string.Equals(kind, FixedWindow, StringComparison.OrdinalIgnoreCase);
    public static bool IsSlidingWindow(string? kind) => string.Equals(kind, SlidingWindow, StringComparison.OrdinalIgnoreCase);
    public static bool IsConcurrency(string? kind) => string.Equals(kind, Concurrency, StringComparison.OrdinalIgnoreCase);
}
