"""Blink-based liveness: frames in, a LivenessResult out (no Flask, no database)."""
