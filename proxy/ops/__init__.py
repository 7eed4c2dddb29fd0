"""Operations endpoints: health, readiness."""
