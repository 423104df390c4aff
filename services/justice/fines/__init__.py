"""Cross-border traffic fines (Directive (EU) 2015/413 as amended by 2024/3237)."""
